"""The compile's stages: each reads and extends one `CompileState`; `edgeq.pipeline` composes them."""
