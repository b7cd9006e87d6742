"""What the chapters show: the chapter context, data notices, figures and tables, provenance and the live views."""
