"""The generator's task fine-tune: RAG chats from a bucket's train split, a LoRA on the text LLM, and
that LoRA as a llama.cpp GGUF adapter the offline profile serves."""
