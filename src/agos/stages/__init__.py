"""The stages every command is made of, as plain typed functions: resolve a run once
(`resolve.ResolvedRun`), capture one step and prove it lossless (`capture.capture_and_prove`),
analyse a trace (`analyse`), each cached by the content of its inputs (`cache.Cache`).
`trace`, `check`, `reproduce`, `trajectory`, `sweep` and `agos.api` are compositions of them."""
