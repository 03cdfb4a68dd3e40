"""Task definitions (one TOML file per benchmark), installed with the package as ``qmamba_eval.task_files``."""
