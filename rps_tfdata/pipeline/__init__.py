"""The library: IDG's semantics."""
