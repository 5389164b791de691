DROP TABLE posted_messages;
