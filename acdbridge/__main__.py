from acdbridge.cli import main

raise SystemExit(main())
