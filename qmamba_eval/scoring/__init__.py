"""Official scoring rules, one small module per benchmark. Pure functions of predictions and references."""
