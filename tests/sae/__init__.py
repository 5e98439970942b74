"""Tests of `saescope.sae` (a package so its test modules' names stay unique across the suite)."""
