"""Reading images as IDG reads them."""
