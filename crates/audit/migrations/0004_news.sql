-- News stories from `md.news` (RSS/Atom feeds, CryptoPanic). Same conventions as 0001_init.sql.
-- A story is stored once: `id` is a hash of its canonical link, and `title_key` (its normalised
-- title) is unique too, so the same story under another link (another feed, another tracking
-- parameter the source did not know) is skipped like a redelivery (`ON CONFLICT DO NOTHING`).
CREATE TABLE news (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    title TEXT NOT NULL,
    title_key TEXT NOT NULL,
    link TEXT NOT NULL,
    summary TEXT NOT NULL,
    -- The configured symbols the story is about, comma-separated; empty: the market as a whole.
    symbols TEXT NOT NULL,
    published_at BIGINT NOT NULL,
    fetched_at BIGINT NOT NULL,
    recorded_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX news_title_key ON news (title_key);
CREATE INDEX news_published_at ON news (published_at);
