# Modules still waiting for their implementation (removed when they pass).
collect_ignore = ["test_logic_blocks.py", "test_document_blocks.py", "test_graph_json.py",
                  "test_bad_input.py", "test_round_trip.py"]
