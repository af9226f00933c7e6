"""Optional Telegram chat commands (engine/chat/telegram.py); off unless AI_QUANT_CHAT_ENABLE=1."""
