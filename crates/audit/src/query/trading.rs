//! Read queries for the edge's trading routes.
