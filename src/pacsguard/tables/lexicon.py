"""Small word lists: common given names and family names (French and English), titles.

They serve two purposes: spotting person-name columns from sampled values, and
spotting "Given FAMILY" patterns in free text. They are deliberately common names
only; the row's own identifying values do the precise work.
"""

from __future__ import annotations


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


GIVEN_NAMES = _words(
    """
    adam adele adrien agathe agnes aicha alain alexandra alexandre alice aline amandine amelie
    andre andree anne annie anthony antoine arnaud arthur aurelie aurelien axel baptiste
    benedicte benjamin benoit bernadette bernard berenice brigitte bruno camille caroline
    catherine cecile celine chantal charles charlotte christian christiane christine christophe
    claire claude claudine clement colette corinne cyril damien daniel danielle david delphine
    denis denise didier dominique eliane elisabeth elodie emilie emma emmanuel emmanuelle eric
    estelle etienne eve fabien fabienne fabrice fanny florence florian francis franck francois
    francoise frederic frederique gael gaelle genevieve georges gerard gilbert gilles ginette
    guillaume guy helene henri herve hugo isabelle jacqueline jacques jean jeanne jeannine jerome
    joel josette joseph julie julien juliette justine karine laetitia laura laure laurence
    laurent lea leon louis louise luc lucas lucie lucienne madeleine manon marc marcel marguerite
    marie marine mathieu mathilde matthieu maurice melanie michel michele micheline
    mireille monique muriel nadine nathalie nicolas nicole noel odette olivier pascal pascale
    patrice patricia patrick paul paulette philippe pierre raymond regine remi renee richard
    robert roger romain sabine sandrine sebastien serge simone solange sophie stephane
    stephanie suzanne sylvain sylvie theo therese thierry thomas valerie vanessa veronique
    victor vincent virginie xavier yann yannick yves yvette yvonne
    abigail alan albert alexander alfred alison amanda amy andrew angela ann anna barbara betty
    brian carol charlie chris christopher daniel deborah dennis donald donna dorothy edward
    elizabeth emily emma eric frank gary george grace hannah harry heather helen henry jack
    james jane janet jason jennifer jessica john joseph joshua joyce karen kate kathleen kenneth
    kevin laura linda lisa margaret mark mary matthew michael michelle nancy oliver patricia
    paul peter rachel rebecca richard robert ronald ruth ryan samuel sandra sarah scott sharon
    stephen steven susan thomas timothy william
    """
)

FAMILY_NAMES = _words(
    """
    martin bernard thomas petit robert richard durand dubois moreau laurent simon michel lefebvre
    leroy roux david bertrand morel fournier girard bonnet dupont lambert fontaine rousseau
    vincent muller lefevre faure andre mercier blanc guerin boyer garnier chevalier francois
    legrand gauthier garcia perrin robin clement morin nicolas henry roussel mathieu gautier
    masson marchand duval denis dumont marie lemaire noel meyer dufour meunier brun blanchard
    giraud joly riviere lucas brunet gaillard barbier arnaud martinez gerard roche renard
    schmitt roy leroux colin vidal caron picard roger fabre aubert lemoine renaud dumas lacroix
    olivier philippe bourgeois pierre benoit rey leclerc payet rolland leclercq guillaume
    lecomte lopez jean dupuis guillot hubert berger carpentier sanchez dupuis moulin louis
    deschamps huet vasseur perez boucher fleury royer klein jacquet adam paris poirier marty
    aubry guyot carre charles renault charpentier menard maillard baron bertin bailly herve
    schneider fernandez collet leger bouvier julien prevost millet perrot daniel cousin
    smith jones williams taylor brown davies evans wilson johnson roberts robinson wright
    thompson walker white edwards hughes green hall lewis harris clarke patel jackson wood
    turner martin cooper hill ward morris moore clark lee king baker harrison morgan allen
    james scott phillips watson davis parker price bennett young griffiths mitchell kelly
    cook carter richardson bailey collins bell shaw murphy miller cox richards khan marshall
    anderson simpson ellis adams singh begum wilkinson foster chapman powell webb rogers gray
    mason ali hunt hussain campbell matthews owen palmer holmes mills barnes knight lloyd
    butler russell barker fisher stevens jenkins murray dixon harvey
    """
)

TITLES = (
    "M.", "Mr", "Mr.", "Mme", "Mme.", "Mlle", "Mlle.", "Mrs", "Mrs.", "Ms", "Ms.", "Miss",
    "Madame", "Monsieur", "Mademoiselle", "Dr", "Dr.", "Docteur", "Doctor", "Pr", "Pr.",
    "Prof", "Prof.", "Professeur", "Professor",
)  # fmt: skip


def fold(text: str) -> str:
    """Lower case without accents, one character for one (positions are kept)."""
    return text.translate(_FOLD).lower()


_FOLD = str.maketrans(
    "ÀÁÂÃÄÅàáâãäåÇçÈÉÊËèéêëÌÍÎÏìíîïÑñÒÓÔÕÖØòóôõöøÙÚÛÜùúûüÝýÿ’",
    "AAAAAAaaaaaaCcEEEEeeeeIIIIiiiiNnOOOOOOooooooUUUUuuuuYyy'",
)
