from turnout.cli import main

raise SystemExit(main())
