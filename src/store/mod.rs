//! Storage: sea-orm entities and the queries the service needs.
