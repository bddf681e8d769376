"""The config validator's parts: a problem collector with typed getters (problems.py), secrets
from files and systemd credentials (secrets.py), the checks that need the whole config
(checks.py: references, uniqueness, files, warnings), the check-config summary (summary.py) and
the comparison with a live PBX over AMI (pbxcheck.py). config.py and flowconfig.py parse with
them, so `acdbridge run`, SIGHUP and `acdbridge check-config` apply exactly the same rules."""
