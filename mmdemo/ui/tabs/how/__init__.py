"""How it works tab: a VLM's anatomy, image tokens, what a fine-tuning method trains, CLIP's
contrastive loss, few-shot on frozen embeddings, audio units."""
