//! Read queries for the edge's monitoring routes.
