//! Test kit: throwaway PostgreSQL clusters and helpers shared by Sluice's tests
