//! Gatehouse's configuration loading, also as a library, so that the fuzz targets can reach it.

pub mod config;
