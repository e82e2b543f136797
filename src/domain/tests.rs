//! Table tests for every divergence rule and property tests for matching.
