from instashare.cli import main

raise SystemExit(main())
