//! Check results as readable text, JSON and JUnit XML.
