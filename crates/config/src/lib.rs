//! Sluice configuration: the TOML file, interpolation, environment overrides and validation
