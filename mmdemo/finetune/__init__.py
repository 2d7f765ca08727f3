"""Fine-tuning: data formats, PEFT and full-parameter methods, recipes, evaluation."""
