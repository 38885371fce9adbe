"""stepwell: run Retab-style document workflows locally, every step persisted."""
