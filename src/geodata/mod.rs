//! Reference geography and site data sets: China's county-level districts,
//! the synthetic site generator and the GeoJSON import/export contract.

pub mod districts;
pub mod generate;
pub mod geojson;
mod names;
pub mod plan;

#[cfg(test)]
mod tests;
