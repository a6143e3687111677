//! Reference geography and site data sets: China's county-level districts,
//! the synthetic site generator and the GeoJSON import/export contract.

pub mod districts;
pub mod generate;
pub mod geojson;
pub mod plan;
mod names;

#[cfg(test)]
mod tests;
