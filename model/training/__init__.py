"""Making the demo model, apart from the inference core: the corpus and its held-out split, the tokenizer, the
training loop (`codellama-lsp train-demo`)."""
