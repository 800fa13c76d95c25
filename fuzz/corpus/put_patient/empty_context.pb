

p-new