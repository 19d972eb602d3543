DROP TABLE book_sends;
