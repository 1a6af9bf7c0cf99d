"""Test helpers: real loopback servers and small canaries the tests build on."""
