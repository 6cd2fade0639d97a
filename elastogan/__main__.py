from elastogan.cli import main

raise SystemExit(main())
