# ruff: noqa: E501  (hand-written conversations, one per line)
"""The intent bench's labelled conversations, written by hand for turnout (no outside corpus).

Each topic is one exchange a user might have, in one language: the question, the assistant's
answer, and what the user might send next: a restatement of the question (rephrase), an explicit
"that is not what I meant" (correction), an ordinary follow-up, and a new question close to the
first one (the hard negative for rephrase). Clarification exchanges and regenerates are listed
apart. `python bench/intent/cases/written.py` writes cases.jsonl from them.
"""

from __future__ import annotations

import json
from pathlib import Path

# lang, question, answer, rephrase, correction, follow-up, near (a new question on the same topic)
TOPICS: list[tuple[str, str, str, str, str, str, str]] = [
    ("en", "How do I sort a list in Python?", "Use sorted(items) or items.sort().",
     "What's the way to get a Python list into sorted order?", "No, I meant sorting by the second element of each tuple.",
     "Thanks. How do I remove duplicates from it afterwards?", "How do I sort a dictionary by value in Python?"),
    ("en", "What's the capital of Australia?", "The capital of Australia is Canberra.",
     "Which city is Australia's capital?", "That's not what I asked, I wanted the largest city.",
     "How many people live there?", "What's the capital of New Zealand?"),
    ("en", "How long should I boil an egg?", "About 9 to 12 minutes for a hard-boiled egg.",
     "For how many minutes do you boil eggs?", "You misunderstood, I want a soft-boiled egg with a runny yolk.",
     "Should I put them in cold water after?", "How long should I poach an egg?"),
    ("en", "Translate 'good morning' into Spanish.", "'Good morning' in Spanish is 'buenos días'.",
     "How do you say good morning in Spanish?", "No, I meant into Portuguese, not Spanish.",
     "And how would I say good night?", "Translate 'good morning' into Italian."),
    ("en", "Write a SQL query to count rows in a table.", "SELECT COUNT(*) FROM my_table;",
     "Give me the SQL that returns how many rows a table has.", "That's wrong, I need the count per customer, grouped.",
     "Can you add a filter for rows created this year?", "Write a SQL query to delete duplicate rows."),
    ("en", "How do I reset my router?", "Hold the reset button for 10 seconds until the lights blink.",
     "What's the procedure to restart my router back to factory settings?", "That's not it, I meant restarting it remotely from the app.",
     "Will that erase my Wi-Fi password?", "How do I update my router's firmware?"),
    ("en", "What is the boiling point of water?", "Water boils at 100 °C at sea level.",
     "At what temperature does water boil?", "I meant in Fahrenheit, not Celsius.",
     "Why is it lower on a mountain?", "What is the freezing point of water?"),
    ("en", "Summarise the plot of Hamlet in two sentences.", "Prince Hamlet seeks revenge on his uncle, who murdered his father. His hesitation leads to the deaths of nearly everyone.",
     "Give me a two-sentence summary of what happens in Hamlet.", "Not what I asked: I wanted Macbeth, not Hamlet.",
     "Who are the main characters?", "Summarise the plot of Othello in two sentences."),
    ("en", "How do I convert a string to an integer in JavaScript?", "Use parseInt(str, 10) or Number(str).",
     "In JavaScript, how can I turn a string into an int?", "No, I was asking about TypeScript types, not runtime conversion.",
     "What happens if the string isn't a number?", "How do I convert an integer to a string in JavaScript?"),
    ("en", "What's a good name for a golden retriever?", "Some ideas: Sunny, Maple, Biscuit or Honey.",
     "Can you suggest names for my golden retriever puppy?", "You got it wrong, I asked for names for a male dog.",
     "I like Maple. Is it too common?", "What's a good name for a black cat?"),
    ("en", "How do I center a div in CSS?", "Use display: flex; justify-content: center; align-items: center on the parent.",
     "What's the CSS to put a div in the middle of the page?", "That doesn't answer my question, I need it to work in IE11.",
     "How do I also center the text inside it?", "How do I make a div full width in CSS?"),
    ("en", "When was the Eiffel Tower built?", "It was built between 1887 and 1889.",
     "In what year was the Eiffel Tower constructed?", "Wrong, I asked when it opened to the public, not when it was built.",
     "How tall is it?", "When was the Statue of Liberty built?"),
    ("en", "How many calories are in a banana?", "A medium banana has about 105 calories.",
     "What's the calorie count of one banana?", "I didn't ask about a medium one, I meant a large banana.",
     "Is it a good snack before running?", "How many calories are in an apple?"),
    ("en", "Explain what an API is.", "An API is a set of rules that lets programs talk to each other.",
     "Can you tell me what API means?", "That's not what I meant, I want to know what a REST API is specifically.",
     "Can you give me an example of one?", "Explain what a webhook is."),
    ("en", "How do I make pancakes?", "Mix flour, milk, eggs and a pinch of salt, then fry ladlefuls in a hot pan.",
     "What's the recipe for pancakes?", "No, not American ones, I meant thin French crêpes.",
     "Can I make the batter the night before?", "How do I make waffles?"),
    ("de", "Wie sortiere ich eine Liste in Python?", "Mit sorted(liste) oder liste.sort().",
     "Wie kann ich eine Python-Liste sortieren?", "Nein, ich meinte nach dem zweiten Element jedes Tupels.",
     "Danke. Wie entferne ich danach Duplikate?", "Wie sortiere ich ein Dictionary nach Werten in Python?"),
    ("de", "Was ist die Hauptstadt von Australien?", "Die Hauptstadt von Australien ist Canberra.",
     "Welche Stadt ist die Hauptstadt Australiens?", "Das habe ich nicht gefragt, ich wollte die größte Stadt wissen.",
     "Wie viele Menschen leben dort?", "Was ist die Hauptstadt von Neuseeland?"),
    ("de", "Wie lange muss ein Ei kochen?", "Für ein hartgekochtes Ei etwa 9 bis 12 Minuten.",
     "Wie viele Minuten kocht man ein Ei?", "Du hast mich falsch verstanden, ich möchte ein weiches Ei.",
     "Soll ich es danach abschrecken?", "Wie lange muss ein Ei pochiert werden?"),
    ("de", "Wie setze ich meinen Router zurück?", "Halten Sie die Reset-Taste 10 Sekunden lang gedrückt.",
     "Wie stelle ich meinen Router auf Werkseinstellungen zurück?", "Das ist falsch, ich meinte einen Neustart über die App.",
     "Wird dabei mein WLAN-Passwort gelöscht?", "Wie aktualisiere ich die Firmware meines Routers?"),
    ("de", "Wann wurde der Eiffelturm gebaut?", "Er wurde zwischen 1887 und 1889 gebaut.",
     "In welchem Jahr wurde der Eiffelturm errichtet?", "Das stimmt nicht, ich wollte wissen, wann er eröffnet wurde.",
     "Wie hoch ist er?", "Wann wurde die Freiheitsstatue gebaut?"),
    ("de", "Wie viele Kalorien hat eine Banane?", "Eine mittelgroße Banane hat etwa 105 Kalorien.",
     "Wie viel Kalorien stecken in einer Banane?", "Ich meinte eine große Banane, nicht eine mittelgroße.",
     "Ist das ein guter Snack vor dem Laufen?", "Wie viele Kalorien hat ein Apfel?"),
    ("de", "Erkläre, was eine API ist.", "Eine API ist eine Schnittstelle, über die Programme miteinander sprechen.",
     "Was bedeutet API?", "Nicht das, was ich wollte: mich interessiert speziell eine REST-API.",
     "Kannst du ein Beispiel geben?", "Erkläre, was ein Webhook ist."),
    ("de", "Wie mache ich Pfannkuchen?", "Mehl, Milch, Eier und eine Prise Salz verrühren und in der Pfanne ausbacken.",
     "Was ist das Rezept für Pfannkuchen?", "Nein, nicht die dicken, ich meinte dünne Crêpes.",
     "Kann ich den Teig am Vorabend machen?", "Wie mache ich Waffeln?"),
    ("fr", "Comment trier une liste en Python ?", "Utilisez sorted(liste) ou liste.sort().",
     "Comment est-ce qu'on trie une liste Python ?", "Non, je voulais dire trier selon le deuxième élément de chaque tuple.",
     "Merci. Comment supprimer les doublons ensuite ?", "Comment trier un dictionnaire par valeur en Python ?"),
    ("fr", "Quelle est la capitale de l'Australie ?", "La capitale de l'Australie est Canberra.",
     "Quelle ville est la capitale australienne ?", "Ce n'est pas ce que j'ai demandé, je voulais la plus grande ville.",
     "Combien d'habitants y vivent ?", "Quelle est la capitale de la Nouvelle-Zélande ?"),
    ("fr", "Combien de temps faut-il cuire un œuf ?", "Environ 9 à 12 minutes pour un œuf dur.",
     "Pendant combien de minutes fait-on bouillir un œuf ?", "Tu as mal compris, je veux un œuf à la coque.",
     "Faut-il le passer sous l'eau froide après ?", "Combien de temps faut-il pocher un œuf ?"),
    ("fr", "Comment réinitialiser mon routeur ?", "Maintenez le bouton reset enfoncé pendant 10 secondes.",
     "Comment remettre mon routeur aux paramètres d'usine ?", "C'est faux, je parlais de le redémarrer depuis l'application.",
     "Est-ce que ça efface mon mot de passe Wi-Fi ?", "Comment mettre à jour le firmware de mon routeur ?"),
    ("fr", "Quand la tour Eiffel a-t-elle été construite ?", "Elle a été construite entre 1887 et 1889.",
     "En quelle année a-t-on construit la tour Eiffel ?", "Non, je demandais quand elle a ouvert au public.",
     "Quelle est sa hauteur ?", "Quand la statue de la Liberté a-t-elle été construite ?"),
    ("fr", "Combien de calories dans une banane ?", "Une banane moyenne contient environ 105 calories.",
     "Une banane, ça fait combien de calories ?", "Je voulais dire une grosse banane, pas une moyenne.",
     "Est-ce un bon en-cas avant de courir ?", "Combien de calories dans une pomme ?"),
    ("fr", "Explique ce qu'est une API.", "Une API est un ensemble de règles qui permet à des programmes de communiquer.",
     "Que veut dire API ?", "Ce n'est pas ça, je voulais savoir ce qu'est une API REST.",
     "Tu peux donner un exemple ?", "Explique ce qu'est un webhook."),
    ("fr", "Comment faire des crêpes ?", "Mélangez farine, lait, œufs et une pincée de sel, puis faites cuire à la poêle.",
     "Quelle est la recette des crêpes ?", "Vous avez mal compris, je voulais des pancakes épais.",
     "Peut-on préparer la pâte la veille ?", "Comment faire des gaufres ?"),
    ("es", "¿Cómo ordeno una lista en Python?", "Usa sorted(lista) o lista.sort().",
     "¿Cuál es la forma de ordenar una lista de Python?", "No, me refería a ordenar por el segundo elemento de cada tupla.",
     "Gracias. ¿Cómo quito los duplicados después?", "¿Cómo ordeno un diccionario por valor en Python?"),
    ("es", "¿Cuál es la capital de Australia?", "La capital de Australia es Canberra.",
     "¿Qué ciudad es la capital australiana?", "Eso no es lo que pregunté, quería la ciudad más grande.",
     "¿Cuántas personas viven allí?", "¿Cuál es la capital de Nueva Zelanda?"),
    ("es", "¿Cuánto tiempo hay que hervir un huevo?", "Unos 9 a 12 minutos para un huevo duro.",
     "¿Cuántos minutos se hierve un huevo?", "Me entendiste mal, quiero un huevo pasado por agua.",
     "¿Lo pongo en agua fría después?", "¿Cuánto tiempo hay que escalfar un huevo?"),
    ("es", "¿Cómo reinicio mi router?", "Mantén pulsado el botón de reset durante 10 segundos.",
     "¿Cómo restablezco mi router a la configuración de fábrica?", "Eso está mal, quise decir reiniciarlo desde la aplicación.",
     "¿Se borrará mi contraseña del wifi?", "¿Cómo actualizo el firmware de mi router?"),
    ("es", "¿Cuándo se construyó la Torre Eiffel?", "Se construyó entre 1887 y 1889.",
     "¿En qué año se levantó la Torre Eiffel?", "No, yo preguntaba cuándo se abrió al público.",
     "¿Cuánto mide?", "¿Cuándo se construyó la Estatua de la Libertad?"),
    ("es", "¿Cuántas calorías tiene un plátano?", "Un plátano mediano tiene unas 105 calorías.",
     "¿Qué cantidad de calorías tiene un plátano?", "Me refería a un plátano grande, no a uno mediano.",
     "¿Es buen tentempié antes de correr?", "¿Cuántas calorías tiene una manzana?"),
    ("es", "Explica qué es una API.", "Una API es un conjunto de reglas que permite que los programas se comuniquen.",
     "¿Qué significa API?", "No es lo que quería, me interesa qué es una API REST.",
     "¿Puedes dar un ejemplo?", "Explica qué es un webhook."),
    ("es", "¿Cómo hago tortitas?", "Mezcla harina, leche, huevos y una pizca de sal y fríelas en una sartén caliente.",
     "¿Cuál es la receta de las tortitas?", "No me entendiste, quería crepes finos.",
     "¿Puedo preparar la masa la noche anterior?", "¿Cómo hago gofres?"),
    ("it", "Come ordino una lista in Python?", "Usa sorted(lista) oppure lista.sort().",
     "Qual è il modo per ordinare una lista Python?", "No, intendevo ordinare per il secondo elemento di ogni tupla.",
     "Grazie. Come tolgo poi i duplicati?", "Come ordino un dizionario per valore in Python?"),
    ("it", "Qual è la capitale dell'Australia?", "La capitale dell'Australia è Canberra.",
     "Quale città è la capitale australiana?", "Non è quello che ho chiesto, volevo la città più grande.",
     "Quante persone ci vivono?", "Qual è la capitale della Nuova Zelanda?"),
    ("it", "Quanto tempo devo bollire un uovo?", "Circa 9-12 minuti per un uovo sodo.",
     "Per quanti minuti si fa bollire un uovo?", "Hai capito male, voglio un uovo alla coque.",
     "Devo metterlo in acqua fredda dopo?", "Quanto tempo devo cuocere un uovo in camicia?"),
    ("it", "Come resetto il mio router?", "Tieni premuto il tasto reset per 10 secondi.",
     "Come riporto il router alle impostazioni di fabbrica?", "È sbagliato, volevo dire riavviarlo dall'app.",
     "Si cancella la password del Wi-Fi?", "Come aggiorno il firmware del router?"),
    ("it", "Quante calorie ha una banana?", "Una banana media ha circa 105 calorie.",
     "Quante calorie ci sono in una banana?", "Intendevo una banana grande, non media.",
     "È un buono spuntino prima di correre?", "Quante calorie ha una mela?"),
    ("it", "Spiega cos'è un'API.", "Un'API è un insieme di regole che permette ai programmi di comunicare.",
     "Che cosa significa API?", "Non hai capito, mi interessa cos'è un'API REST.",
     "Puoi fare un esempio?", "Spiega cos'è un webhook."),
    ("nl", "Hoe sorteer ik een lijst in Python?", "Gebruik sorted(lijst) of lijst.sort().",
     "Hoe kan ik een Python-lijst sorteren?", "Nee, ik bedoelde sorteren op het tweede element van elke tuple.",
     "Bedankt. Hoe verwijder ik daarna dubbele waarden?", "Hoe sorteer ik een dictionary op waarde in Python?"),
    ("nl", "Wat is de hoofdstad van Australië?", "De hoofdstad van Australië is Canberra.",
     "Welke stad is de hoofdstad van Australië?", "Dat is niet wat ik vroeg, ik wilde de grootste stad.",
     "Hoeveel mensen wonen daar?", "Wat is de hoofdstad van Nieuw-Zeeland?"),
    ("nl", "Hoe lang moet ik een ei koken?", "Ongeveer 9 tot 12 minuten voor een hardgekookt ei.",
     "Hoeveel minuten kook je een ei?", "Je begrijpt me verkeerd, ik wil een zachtgekookt ei.",
     "Moet ik het daarna laten schrikken?", "Hoe lang moet ik een ei pocheren?"),
    ("nl", "Hoe reset ik mijn router?", "Houd de resetknop 10 seconden ingedrukt.",
     "Hoe zet ik mijn router terug naar de fabrieksinstellingen?", "Dat klopt niet, ik bedoel herstarten via de app.",
     "Wordt mijn wifi-wachtwoord dan gewist?", "Hoe update ik de firmware van mijn router?"),
    ("nl", "Hoeveel calorieën zit er in een banaan?", "Een middelgrote banaan heeft ongeveer 105 calorieën.",
     "Hoeveel calorieën heeft een banaan?", "Dat bedoelde ik niet, ik vroeg naar een grote banaan.",
     "Is dat een goede snack voor het hardlopen?", "Hoeveel calorieën zit er in een appel?"),
    ("nl", "Leg uit wat een API is.", "Een API is een set afspraken waarmee programma's met elkaar praten.",
     "Wat betekent API?", "Dat is fout, ik wil weten wat een REST-API is.",
     "Kun je een voorbeeld geven?", "Leg uit wat een webhook is."),
    ("pt", "Como ordeno uma lista em Python?", "Use sorted(lista) ou lista.sort().",
     "Qual é a forma de ordenar uma lista em Python?", "Não, eu quis dizer ordenar pelo segundo elemento de cada tupla.",
     "Obrigado. Como removo os duplicados depois?", "Como ordeno um dicionário por valor em Python?"),
    ("pt", "Qual é a capital da Austrália?", "A capital da Austrália é Camberra.",
     "Que cidade é a capital australiana?", "Não foi isso que eu perguntei, eu queria a maior cidade.",
     "Quantas pessoas moram lá?", "Qual é a capital da Nova Zelândia?"),
    ("pt", "Quanto tempo devo cozinhar um ovo?", "Cerca de 9 a 12 minutos para um ovo cozido.",
     "Por quantos minutos se cozinha um ovo?", "Você entendeu errado, eu quero um ovo mole.",
     "Devo colocar em água fria depois?", "Quanto tempo devo escalfar um ovo?"),
    ("pt", "Como reinicio meu roteador?", "Segure o botão reset por 10 segundos.",
     "Como volto meu roteador para as configurações de fábrica?", "Isso está errado, eu queria reiniciar pelo aplicativo.",
     "Minha senha do wi-fi será apagada?", "Como atualizo o firmware do roteador?"),
    ("pt", "Quantas calorias tem uma banana?", "Uma banana média tem cerca de 105 calorias.",
     "Qual é a quantidade de calorias de uma banana?", "Eu quis dizer uma banana grande, não média.",
     "É um bom lanche antes de correr?", "Quantas calorias tem uma maçã?"),
    ("pt", "Explique o que é uma API.", "Uma API é um conjunto de regras que permite que programas conversem.",
     "O que significa API?", "Não é isso que eu perguntei, quero saber o que é uma API REST.",
     "Pode dar um exemplo?", "Explique o que é um webhook."),
]  # fmt: skip

# lang, user question, the assistant asking what was meant, the user's answer
CLARIFICATIONS: list[tuple[str, str, str, str]] = [
    ("en", "Sort my data.", "Do you mean a Python list or a pandas DataFrame?", "The DataFrame, by the date column."),
    ("en", "Book a table for tonight.", "Sure — for how many people, and at what time?", "Four people at 8 pm."),
    ("en", "Convert this to metric.", "Which value would you like converted: the weight or the height?", "No, I meant both of them."),
    ("en", "Fix my code.", "Could you paste the code and the error message you get?", "Here: TypeError: 'NoneType' object is not iterable."),
    ("en", "What's the best laptop?", "What will you mostly use it for, and what's your budget?", "Programming, under 1500 dollars."),
    ("en", "How do I install it?", "Which operating system are you on?", "Ubuntu 22.04."),
    ("en", "Make it shorter.", "Are you referring to the email draft or the summary above?", "I meant the email draft."),
    ("en", "Plan a trip.", "Where would you like to go, and for how many days?", "Lisbon, five days in May."),
    ("de", "Sortiere meine Daten.", "Meinst du eine Python-Liste oder einen pandas DataFrame?", "Den DataFrame, nach Datum."),
    ("de", "Reserviere einen Tisch für heute Abend.", "Gern – für wie viele Personen und um wie viel Uhr?", "Vier Personen um 20 Uhr."),
    ("de", "Wie installiere ich das?", "Welches Betriebssystem verwenden Sie?", "Windows 11."),
    ("de", "Mach es kürzer.", "Meinen Sie den E-Mail-Entwurf oder die Zusammenfassung?", "Nein, ich meinte den E-Mail-Entwurf."),
    ("fr", "Trie mes données.", "Veux-tu dire une liste Python ou un DataFrame pandas ?", "Le DataFrame, par date."),
    ("fr", "Réserve une table pour ce soir.", "Bien sûr : pour combien de personnes et à quelle heure ?", "Quatre personnes à 20 h."),
    ("fr", "Comment je l'installe ?", "Quel système d'exploitation utilisez-vous ?", "macOS Sonoma."),
    ("fr", "Rends-le plus court.", "Voulez-vous dire le brouillon de l'e-mail ou le résumé ?", "Non, je voulais dire le brouillon."),
    ("es", "Ordena mis datos.", "¿Te refieres a una lista de Python o a un DataFrame de pandas?", "Al DataFrame, por fecha."),
    ("es", "Reserva una mesa para esta noche.", "Claro, ¿para cuántas personas y a qué hora?", "Cuatro personas a las ocho."),
    ("es", "¿Cómo lo instalo?", "¿Qué sistema operativo usas?", "Fedora 39."),
    ("es", "Hazlo más corto.", "¿Quieres decir el borrador del correo o el resumen?", "No, me refería al borrador."),
    ("it", "Ordina i miei dati.", "Intendi una lista Python o un DataFrame pandas?", "Il DataFrame, per data."),
    ("it", "Come lo installo?", "Quale sistema operativo usi?", "Windows 10."),
    ("it", "Rendilo più corto.", "Intendi la bozza dell'email o il riassunto?", "No, intendevo la bozza."),
    ("nl", "Sorteer mijn data.", "Bedoel je een Python-lijst of een pandas DataFrame?", "Het DataFrame, op datum."),
    ("nl", "Hoe installeer ik het?", "Welk besturingssysteem gebruik je?", "Debian 12."),
    ("nl", "Maak het korter.", "Bedoel je het e-mailconcept of de samenvatting?", "Nee, ik bedoelde het concept."),
    ("pt", "Ordene meus dados.", "Você quer dizer uma lista Python ou um DataFrame do pandas?", "O DataFrame, por data."),
    ("pt", "Como eu instalo?", "Qual sistema operacional você usa?", "Ubuntu 24.04."),
    ("pt", "Deixe mais curto.", "Você quer dizer o rascunho do e-mail ou o resumo?", "Não, eu quis dizer o rascunho."),
]  # fmt: skip

# Follow-ups that open with a "no" and are not corrections, after an answer that ended with an offer.
DISMISSALS: list[tuple[str, str, str, str]] = [
    ("en", "What's 15% of 80?", "15% of 80 is 12. Would you like me to show the steps?", "No thanks, that's all I needed."),
    ("en", "Is it going to rain in London tomorrow?", "I can't see live forecasts; a weather service will know. Anything else?", "No, that's fine. What's a good umbrella brand?"),
    ("en", "Recommend a sci-fi book.", "Try 'The Left Hand of Darkness' by Ursula K. Le Guin. Want more suggestions?", "No need, I'll start with that one."),
    ("en", "Name a prime number above 100.", "101 is prime. Shall I list more?", "No worries, one is enough. Is 103 prime too?"),
    ("de", "Was sind 15 % von 80?", "15 % von 80 sind 12. Soll ich den Rechenweg zeigen?", "Nein danke, das reicht mir."),
    ("fr", "Combien font 15 % de 80 ?", "15 % de 80 font 12. Voulez-vous que je détaille le calcul ?", "Non merci, c'est tout."),
    ("es", "¿Cuánto es el 15 % de 80?", "El 15 % de 80 es 12. ¿Quieres que te muestre los pasos?", "No, gracias, es todo."),
    ("it", "Quanto fa il 15% di 80?", "Il 15% di 80 è 12. Vuoi che ti mostri i passaggi?", "No grazie, è tutto."),
    ("nl", "Wat is 15% van 80?", "15% van 80 is 12. Wil je dat ik de stappen laat zien?", "Nee, bedankt, dat is alles."),
    ("pt", "Quanto é 15% de 80?", "15% de 80 é 12. Quer que eu mostre os passos?", "Não, obrigado, é tudo."),
]  # fmt: skip

# Written after the new-question test (intent/newquestion.py) was fixed, to check it on topics and
# shapes it was not made from (elliptical "and for…?" questions among them): lang, question,
# answer, rephrase, near (a new question on the same topic), follow-up. Appended after the rest,
# so the halves of the earlier cases stay as they were.
FRESH: list[tuple[str, str, str, str, str, str]] = [
    ("en", "How many bones are in the human body?", "An adult human skeleton has 206 bones.",
     "What's the total number of bones in an adult person?", "How many muscles are in the human body?", "Which one is the longest?"),
    ("en", "How do I make my Wi-Fi faster?", "Move the router to a central spot, use the 5 GHz band and update its firmware.",
     "Any tips to speed up my wireless internet at home?", "How do I make my Wi-Fi more secure?", "Does a mesh system help with that?"),
    ("de", "Wie lange dauert ein Flug von Berlin nach New York?", "Ein Direktflug dauert etwa neun Stunden.",
     "Wie viele Stunden fliegt man von Berlin nach New York?", "Und wie lange von Berlin nach Tokio?", "Welche Airlines fliegen die Strecke direkt?"),
    ("de", "Was kostet ein Personalausweis?", "Ein Personalausweis kostet 37 Euro, für Personen unter 24 Jahren 22,80 Euro.",
     "Wie teuer ist der Personalausweis?", "Was kostet ein Reisepass?", "Wo kann ich ihn beantragen?"),
    ("fr", "Quelle est la différence entre un crocodile et un alligator ?", "L'alligator a un museau large en U, le crocodile un museau plus fin en V.",
     "Comment distinguer un alligator d'un crocodile ?", "Quelle est la différence entre un lapin et un lièvre ?", "Lequel est le plus dangereux ?"),
    ("fr", "Comment enlever une tache de vin rouge ?", "Épongez, couvrez de sel, puis lavez à l'eau froide.",
     "Que faire pour faire partir une tache de vin rouge ?", "Et pour une tache de café ?", "Ça marche aussi sur un canapé ?"),
    ("es", "¿Cuántos habitantes tiene Madrid?", "Madrid tiene unos 3,3 millones de habitantes.",
     "¿Cuál es la población de Madrid?", "¿Y Barcelona?", "¿Es la ciudad más grande de España?"),
    ("es", "¿Cómo se cuida un cactus?", "Mucha luz, riego escaso cada dos o tres semanas y tierra que drene bien.",
     "¿Qué necesita un cactus para estar sano?", "¿Cómo se cuida una orquídea?", "¿Y en invierno lo riego menos?"),
    ("it", "Quanto dista Roma da Milano?", "Circa 570 km in linea d'aria, poco più di 3 ore in treno.",
     "Quanti chilometri ci sono tra Roma e Milano?", "Quanto dista Roma da Napoli?", "Conviene prendere il treno o l'aereo?"),
    ("it", "Come si prepara il tiramisù?", "Savoiardi inzuppati nel caffè, crema di mascarpone, uova e zucchero, cacao in polvere sopra.",
     "Mi spieghi come fare il tiramisù?", "Come si prepara la panna cotta?", "Si può fare senza uova crude?"),
    ("nl", "Hoe hoog is de Mount Everest?", "De Mount Everest is 8.849 meter hoog.",
     "Hoeveel meter is de Mount Everest?", "Hoe hoog is de K2?", "Wie heeft hem als eerste beklommen?"),
    ("nl", "Wanneer begint de zomertijd?", "De zomertijd begint op de laatste zondag van maart.",
     "Op welke dag gaat de klok vooruit?", "Wanneer begint de wintertijd?", "Gaat de klok dan een uur vooruit?"),
    ("pt", "Qual é o maior rio do Brasil?", "O maior rio do Brasil é o Amazonas.",
     "Que rio brasileiro é o mais extenso?", "Qual é o maior rio da Europa?", "Quantos quilômetros ele tem?"),
    ("pt", "Como faço um currículo?", "Inclua dados de contato, experiência, formação e competências, em no máximo duas páginas.",
     "Como devo montar o meu CV?", "Como faço uma carta de apresentação?", "Devo colocar foto?"),
]  # fmt: skip


def cases() -> list[dict[str, object]]:
    out: list[dict[str, object]] = []

    def add(
        kind: str, lang: str, turns: list[tuple[str, str]], source: str, **extra: object
    ) -> None:
        out.append({"id": f"{source}-{len(out):03d}", "lang": lang, "expect": kind,
                    "turns": [list(t) for t in turns], "source": source, **extra})  # fmt: skip

    for i, (lang, q, a, rephrase, correction, follow, near) in enumerate(TOPICS):
        head = [("user", q), ("assistant", a)]
        add("rephrase", lang, [*head, ("user", rephrase)], "topic")
        add("correction", lang, [*head, ("user", correction)], "topic")
        add("none", lang, [*head, ("user", follow)], "topic")
        add("none", lang, [*head, ("user", near)], "topic-near")
        # A regenerate: the very conversation sent again, 20 s later (inside the window)...
        add("regenerate", lang, head[:1], "regenerate", resent_after_s=20.0)
        if i % 2 == 0:  # ...and, as negatives, one sent again after the window
            add("none", lang, head[:1], "regenerate-late", resent_after_s=3600.0)
    for lang, q, ask, reply in CLARIFICATIONS:
        add("clarification", lang, [("user", q), ("assistant", ask), ("user", reply)], "clarify")
    for lang, q, a, reply in DISMISSALS:
        add("none", lang, [("user", q), ("assistant", a), ("user", reply)], "dismissal")
    for i, (lang, q, a, rephrase, near, follow) in enumerate(FRESH):
        head = [("user", q), ("assistant", a)]
        add("rephrase", lang, [*head, ("user", rephrase)], "fresh")
        negatives = [("fresh-near", near), ("fresh", follow)]
        for source, text in negatives if i % 2 == 0 else negatives[::-1]:  # halves: 7 near each
            add("none", lang, [*head, ("user", text)], source)
    return out


if __name__ == "__main__":
    path = Path(__file__).with_name("cases.jsonl")
    rows = cases()
    path.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in rows))
    print(f"{len(rows)} cases -> {path.name}")
