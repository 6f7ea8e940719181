"""sofeed: a realtime mirror of Stack Overflow's question feed (Scrapy project)."""
