"""Framework integrations: Transformers/PEFT, Lightning and plain loops.

Import the one you use (``peft_notify.integrations.transformers``); each imports its
framework only when imported itself, so the core install never needs them.
"""
