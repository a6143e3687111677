-- Search by name or address: Chinese has no spaces between words, so match by
-- substrings. FTS5's trigram tokenizer indexes every 3-character window and
-- serves LIKE '%…%' from the index for patterns of 3+ characters.
-- rowid = sites.id; retired sites are not in it.
CREATE VIRTUAL TABLE site_search USING fts5(name, address, tokenize = 'trigram');

INSERT INTO site_search (rowid, name, address)
SELECT id, name, address FROM sites WHERE status != 'retired';
