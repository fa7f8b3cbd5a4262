//! End-to-end tests, one binary. Each module says why it needs more than a unit test.
//! Modules: `harness` (moto server, temp dirs), and one module per capability.
