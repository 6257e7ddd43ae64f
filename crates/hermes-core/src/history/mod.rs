//! Linearizability checking of client histories (see the module docs once filled).
