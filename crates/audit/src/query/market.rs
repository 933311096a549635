//! Read queries for the edge's market routes.
