"""codellama-lsp: inline completions and docstrings from a local Code Llama, over the Language Server Protocol."""

__version__ = "0.1.0"
