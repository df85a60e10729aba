from wedsync_realtime.cli import main

raise SystemExit(main())
