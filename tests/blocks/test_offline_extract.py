"""Offline extraction of keys ``required`` lists without declaring them."""

from __future__ import annotations

from blocks.providers.offline_extract import extract_offline

TEXT = "Invoice Number: INV-1\nTotal: 12.50\nPieces: 3\n"


def test_required_keys_without_properties_are_looked_for_untyped() -> None:
    schema = {"type": "object", "required": ["invoice_number", "total", "pieces", "missing"]}
    data, likelihoods = extract_offline(TEXT, schema)
    assert data == {"invoice_number": "INV-1", "total": 12.5, "pieces": 3, "missing": None}
    assert likelihoods["missing"] == 0.0 and likelihoods["total"] == 1.0


def test_declared_properties_come_first_and_are_not_looked_for_twice() -> None:
    schema = {"type": "object", "properties": {"total": {"type": "string"}},
              "required": ["total", "pieces"]}
    data, _ = extract_offline(TEXT, schema)
    assert data == {"total": "12.50", "pieces": 3}
