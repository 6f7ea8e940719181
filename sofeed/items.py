"""The item the spider yields: one question as its feed entry describes it."""

import scrapy


class QuestionItem(scrapy.Item):
    entry_id = scrapy.Field()  # the Atom <id>, e.g. https://stackoverflow.com/q/73118407
    question_id = scrapy.Field()  # int, where the id or link has one
    title = scrapy.Field()  # plain text, entities decoded
    link = scrapy.Field()  # the rel="alternate" href
    author = scrapy.Field()
    author_uri = scrapy.Field()
    tags = scrapy.Field()  # list of category terms
    rank = scrapy.Field()  # int from re:rank
    published = scrapy.Field()  # aware UTC datetime
    updated = scrapy.Field()  # aware UTC datetime
    summary_text = scrapy.Field()  # the HTML summary as plain text, ~500 chars
