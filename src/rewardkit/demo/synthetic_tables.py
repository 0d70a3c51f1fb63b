"""Word lists for `synthetic.py`: facts and harmless requests, one `|`-separated row per line."""

from __future__ import annotations


def table(text: str) -> list[list[str]]:
    """Rows of a ``|``-separated table written as a string (keeps long tables compact)."""
    rows = [line.split("|") for line in text.strip().splitlines()]
    return [[cell.strip().replace(r"\n", "\n") for cell in row] for row in rows]


CAPITALS = table("""
Australia|Canberra|Sydney
Canada|Ottawa|Toronto
Brazil|Brasília|Rio de Janeiro
Turkey|Ankara|Istanbul
Switzerland|Bern|Zurich
the United States|Washington, D.C.|New York
India|New Delhi|Mumbai
China|Beijing|Shanghai
Japan|Tokyo|Osaka
Germany|Berlin|Munich
France|Paris|Lyon
Italy|Rome|Milan
Spain|Madrid|Barcelona
Nigeria|Abuja|Lagos
Morocco|Rabat|Casablanca
Vietnam|Hanoi|Ho Chi Minh City
New Zealand|Wellington|Auckland
Pakistan|Islamabad|Karachi
Egypt|Cairo|Alexandria
Russia|Moscow|Saint Petersburg
the United Kingdom|London|Manchester
Portugal|Lisbon|Porto
Greece|Athens|Thessaloniki
Mexico|Mexico City|Guadalajara
Argentina|Buenos Aires|Córdoba
Peru|Lima|Cusco
Kenya|Nairobi|Mombasa
Norway|Oslo|Bergen
Sweden|Stockholm|Gothenburg
Poland|Warsaw|Kraków
South Korea|Seoul|Busan
Thailand|Bangkok|Chiang Mai
Ireland|Dublin|Cork
Austria|Vienna|Salzburg
Colombia|Bogotá|Medellín
""")
ELEMENTS = [
    e.split(":")
    for e in """hydrogen:H helium:He carbon:C nitrogen:N oxygen:O sodium:Na magnesium:Mg aluminium:Al
    silicon:Si phosphorus:P sulfur:S chlorine:Cl potassium:K calcium:Ca iron:Fe copper:Cu zinc:Zn silver:Ag
    tin:Sn gold:Au mercury:Hg lead:Pb neon:Ne iodine:I""".split()
]
# question | answer sentence with {x} | right | wrong; wrong
FACTS = table("""
How many legs does a spider have?|A spider has {x} legs.|8|6;10
Which planet is closest to the Sun?|{x} is the planet closest to the Sun.|Mercury|Venus;Mars
What is the largest planet in our solar system?|The largest planet in our solar system is {x}.|Jupiter|Saturn;Neptune
Which planet is known as the Red Planet?|{x} is known as the Red Planet.|Mars|Venus;Jupiter
Which planet is famous for its bright rings?|{x} is the planet famous for its bright rings.|Saturn|Jupiter;Uranus
Which is the hottest planet in our solar system?|The hottest planet in our solar system is {x}.|Venus|Mercury;Mars
How many planets are in our solar system?|There are {x} planets in our solar system.|8|9;7
What is the largest ocean on Earth?|The largest ocean on Earth is the {x} Ocean.|Pacific|Atlantic;Indian
At what temperature in Celsius does water boil at sea level?|At sea level, water boils at {x} degrees Celsius.|100|90;212
At what temperature in Celsius does water freeze?|Water freezes at {x} degrees Celsius.|0|32;10
Who wrote Romeo and Juliet?|Romeo and Juliet was written by {x}.|William Shakespeare|Charles Dickens;Jane Austen
Who painted the Mona Lisa?|The Mona Lisa was painted by {x}.|Leonardo da Vinci|Michelangelo;Pablo Picasso
What is the largest mammal?|The largest mammal is the {x}.|blue whale|African elephant;giraffe
What is the square root of 81?|The square root of 81 is {x}.|9|8;7
How many days are in a leap year?|A leap year has {x} days.|366|365;364
How many continents are there?|There are {x} continents.|7|6;5
What is the tallest mountain in the world?|The tallest mountain in the world is {x}.|Mount Everest|K2;Mont Blanc
What is the chemical formula for water?|The chemical formula for water is {x}.|H2O|CO2;H2O2
Which gas do plants absorb from the air?|Plants absorb {x} from the air.|carbon dioxide|oxygen;nitrogen
What is the hardest natural substance?|The hardest natural substance is {x}.|diamond|gold;granite
Who invented the telephone?|The telephone was invented by {x}.|Alexander Graham Bell|Thomas Edison;Nikola Tesla
Who was the first person to walk on the Moon?|The first person to walk on the Moon was {x}.|Neil Armstrong|Buzz Aldrin;Yuri Gagarin
In which year did World War II end?|World War II ended in {x}.|1945|1944;1939
What is the currency of Japan?|The currency of Japan is the {x}.|yen|yuan;won
What language is mainly spoken in Brazil?|The main language of Brazil is {x}.|Portuguese|Spanish;French
What is the largest country by area?|The largest country by area is {x}.|Russia|Canada;China
How many sides does a hexagon have?|A hexagon has {x} sides.|6|8;5
How many hours are in a day?|There are {x} hours in a day.|24|12;20
What is the main gas in Earth's atmosphere?|The main gas in Earth's atmosphere is {x}.|nitrogen|oxygen;carbon dioxide
Which organ pumps blood through the body?|The {x} pumps blood through the body.|heart|liver;lungs
How many bones are in the adult human body?|The adult human body has {x} bones.|206|201;212
What is the longest bone in the human body?|The longest bone in the human body is the {x}.|femur|tibia;humerus
How many strings does a standard guitar have?|A standard guitar has {x} strings.|6|4;8
Which animal is known as the King of the Jungle?|The {x} is known as the King of the Jungle.|lion|tiger;elephant
What is the boiling point of water in Fahrenheit?|Water boils at {x} degrees Fahrenheit at sea level.|212|100;180
Who developed the theory of relativity?|The theory of relativity was developed by {x}.|Albert Einstein|Isaac Newton;Galileo Galilei
How many players are on a soccer team on the field?|A soccer team has {x} players on the field.|11|10;9
Which continent is Egypt in?|Egypt is in {x}.|Africa|Asia;Europe
What is the largest desert in Africa?|The largest desert in Africa is the {x}.|Sahara|Kalahari;Gobi
How many minutes are in an hour?|There are {x} minutes in an hour.|60|100;30
What color do you get by mixing blue and yellow?|Mixing blue and yellow gives {x}.|green|purple;orange
""")
REQUESTS = table(r"""
write a haiku about autumn|writing a haiku|Crisp leaves drift and fall,\ngolden light on quiet paths,\nthe year exhales slow.
give me three tips for sleeping better|sleep tips|1. Go to bed and wake up at the same time every day.\n2. Avoid screens and caffeine in the evening.\n3. Keep your bedroom dark, quiet and cool.
explain photosynthesis in one or two sentences|explaining photosynthesis|Photosynthesis is how plants use sunlight, water and carbon dioxide to make sugar for energy. Oxygen is released as a by-product.
convert 5 kilometers to miles|unit conversions|5 kilometers is about 3.11 miles, since one kilometer is roughly 0.621 miles.
suggest three names for a grey cat|naming a pet|Here are three ideas: Smokey, Ash and Pebble.
translate "good morning" into Spanish|translations|"Good morning" in Spanish is "buenos días".
give me a simple recipe for scrambled eggs|recipes|Whisk two eggs with a pinch of salt, melt a little butter in a pan over low heat, add the eggs and stir gently until just set. Serve right away.
explain what a noun is|grammar questions|A noun is a word that names a person, place, thing or idea, such as "teacher", "city", "book" or "happiness".
write a short birthday message for my sister|writing a birthday message|Happy birthday to the best sister in the world! Thank you for always being there for me. I hope this year brings you lots of joy.
tell me how to reverse a list in Python|Python questions|Use my_list.reverse() to reverse the list in place, or my_list[::-1] to get a reversed copy.
recommend a stretch for a stiff neck|stretching advice|Sit up straight and slowly tilt your right ear toward your right shoulder. Hold for 20 seconds, then switch sides. Stop if it hurts.
summarize the story of Cinderella in two sentences|summarizing stories|Mistreated by her stepfamily, Cinderella goes to the royal ball with help from her fairy godmother and wins the prince's heart. She flees at midnight, leaving a glass slipper that the prince uses to find her.
explain why the sky is blue|science questions|Air molecules scatter sunlight, and they scatter blue light much more than red light because of its shorter wavelength, so the sky looks blue.
give me a fun fact about octopuses|fun facts|Octopuses have three hearts and blue blood.
suggest a name for a bakery|naming a business|How about "The Rolling Pin"? It is friendly, easy to remember and clearly about baking.
tell me how many minutes are in a day|time calculations|There are 1,440 minutes in a day, because 24 hours × 60 minutes = 1,440 minutes.
write a polite email declining a meeting|writing emails|Hi Sam,\nThank you for the invitation. Unfortunately I won't be able to join the meeting on Thursday. Could you share the notes afterwards?\nBest regards,\nAlex
explain the difference between weather and climate|explaining weather and climate|Weather is the short-term state of the atmosphere, like today's rain. Climate is the average weather of a place over many years.
give me a synonym for "happy"|finding synonyms|A good synonym for "happy" is "cheerful". Others are "joyful" and "content".
suggest a quick warm-up before running|exercise tips|Walk briskly for 3 minutes, then do 10 leg swings per leg, 10 walking lunges and 30 seconds of easy jogging in place.
tell me how to boil an egg|cooking questions|Put the egg in boiling water for about 7 minutes for a firm yolk, then cool it in cold water before peeling.
write a riddle for kids|writing riddles|What has hands but cannot clap? A clock!
explain what a prime number is|math questions|A prime number is a whole number greater than 1 whose only divisors are 1 and itself, like 2, 3, 5, 7 and 11.
give me ideas for a rainy day with kids|activity ideas|You could build a blanket fort, bake cookies together, hold a board game tournament or put on a puppet show.
tell me what 15% of 80 is|percentages|15% of 80 is 12, because 0.15 × 80 = 12.
recommend a classic novel|book recommendations|Try "Pride and Prejudice" by Jane Austen. It is witty, romantic and still easy to read today.
explain how to water a cactus|plant care|Water a cactus thoroughly only when the soil is completely dry, usually every two to three weeks, and use a pot that drains well.
write a one-line slogan for a bike shop|writing slogans|Ride further, smile wider: your journey starts here.
tell me how to say "thank you" in French|translations|"Thank you" in French is "merci".
give me a tip for remembering new words|study tips|Use each new word in a sentence of your own on the day you learn it, then review it again a few days later.
explain what a budget is|personal finance|A budget is a plan for your money: it lists your expected income and decides in advance how much goes to bills, savings and spending.
suggest a healthy snack|snack ideas|An apple with a spoonful of peanut butter is a tasty snack with fiber and protein.
tell me how to make a paper airplane|paper crafts|Fold a sheet in half lengthwise and unfold it, fold the top corners to the center line, fold the new edges to the center again, then fold it in half and fold down both wings.
write a short thank-you note to a teacher|writing thank-you notes|Dear Ms. Lee,\nThank you for your patience and encouragement this year. Your lessons made me love learning.\nWarm wishes,\nMaya
explain what gravity does|physics questions|Gravity is the force that pulls objects with mass toward each other. It keeps us on the ground and keeps the Moon in orbit around Earth.
give me a tip for staying focused while studying|study tips|Work in 25-minute blocks with a 5-minute break in between, and keep your phone in another room.
""")
