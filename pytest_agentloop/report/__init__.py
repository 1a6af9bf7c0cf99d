"""Everything a person reads: terminal summary, JSON, HTML, finding cards."""
