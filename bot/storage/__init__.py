"""Where conversations are kept: tracker stores and lock stores (in memory, SQL, Redis)."""
