"""acdbridge: a contact-centre telephony bridge for Asterisk."""

__version__ = "0.1.0"
