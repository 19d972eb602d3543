DROP TABLE vouchers;
DROP TABLE books;
DROP TABLE allocations;
DROP TABLE programs;
