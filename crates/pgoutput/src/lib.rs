//! Sans-IO decoder for PostgreSQL's pgoutput logical replication protocol
