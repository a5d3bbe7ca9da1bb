from nbdtui.cli import main

raise SystemExit(main())
