"""The scheduler's parts: when each feed is due, how a crawl went, who may crawl.

backoff.py  when a feed may be crawled next, after failures or a Retry-After
outcome.py  one crawl's result, from Scrapy's stats: its log line and status record
lease.py    the lease that lets one scheduler crawl while others stand by
loop.py     the long-running loop: `schedule` driven by Twisted, in-process crawls

`scheduler.py` at the repository root is the command that runs them.
"""
