"""What people read: tables, plots and scorecard renderings, all pure functions of results documents."""
