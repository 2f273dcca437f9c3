"""IDG's transforms."""
