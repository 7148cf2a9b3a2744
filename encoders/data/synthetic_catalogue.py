"""In-code vocabularies for the synthetic catalogue: categories, product types, brands, attributes,
query synonyms, shopping styles and occasion intents.

Pure data plus tiny parsers; :mod:`encoders.data.synthetic` turns it into pins, queries and
engagement. A product type line reads ``Title Name | query synonyms, ... | palette | spec;spec / spec;spec``:
the title always uses the name, queries may use a synonym that never appears in any title
("couch" for Sofa, "tap" for Faucet), which is what makes lexical matching imperfect.
"""

from __future__ import annotations

from dataclasses import dataclass

PALETTES: dict[str, tuple[str, ...]] = {
    "paint": ("Navy Blue", "Sage Green", "Charcoal Gray", "Ultra White", "Warm Beige", "Brick Red", "Black",
              "Sunny Yellow", "Teal"),
    "metal": ("Chrome", "Brushed Nickel", "Matte Black", "Oil-Rubbed Bronze", "Polished Brass", "Gold"),
    "tool": ("Yellow", "Red", "Blue", "Black", "Orange", "Green"),
    "kitchen": ("Stainless Steel", "Black", "Red", "White", "Copper", "Sage Green", "Cream"),
    "home": ("Oak", "Walnut", "White", "Gray", "Navy", "Black Metal", "Rattan", "Velvet", "Light Oak",
             "Distressed White", "Reclaimed Wood", "Teak", "Mustard", "Iron", "Seagrass", "Whitewashed",
             "Blush Pink", "Jute", "Macrame", "Terracotta", "Ivory", "Birch", "Galvanized", "Linen"),
    "light": ("Matte Black", "Brushed Nickel", "Gold", "Rattan", "White", "Iron", "Galvanized", "Walnut"),
    "garden": ("Green", "Black", "Gray", "Terracotta", "Brown", "Blue", "Galvanized"),
    "apparel": ("Navy", "Black", "Heather Gray", "Olive", "Burgundy", "White", "Red", "Khaki", "Blush Pink"),
    "pet": ("Gray", "Brown", "Blue", "Pink", "Black", "Beige"),
    "floor": ("Natural Oak", "Gray", "White", "Walnut", "Hickory", "Slate", "Matte Black", "Satin Nickel"),
}

#: category → (brands in popularity order, product type lines)
CATEGORIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "paint": (
        ("Behr", "Glidden", "Valspar", "Rust-Oleum", "Sherwin-Williams", "PPG"),
        (
            "Exterior Paint | house paint, outdoor paint | paint | 1 gal.;5 gal.;Quart / Satin;Flat;Semi-Gloss",
            "Interior Paint | wall paint, room paint | paint | 1 gal.;5 gal.;Quart / Eggshell;Matte;Satin",
            "Spray Paint | aerosol paint, spray can | paint | 12 oz.;16 oz. / Gloss;Matte;Metallic",
            "Wood Stain | deck stain, stain | paint | 1 gal.;Quart / Semi-Transparent;Solid",
            "Paint Roller | roller, roller kit | tool | 9 in.;4 in. / 3/8 in. Nap;1/2 in. Nap",
            "Paint Brush | brush, angled brush | tool | 2 in.;3 in.;1.5 in. / Angled;Flat",
        ),
    ),
    "tools": (
        ("DeWalt", "Milwaukee", "Makita", "Ryobi", "Craftsman", "Bosch"),
        (
            "Cordless Drill | power drill, drill driver | tool | 20V;18V;12V / Brushless;Compact",
            "Circular Saw | skil saw, power saw | tool | 7-1/4 in.;6-1/2 in. / Cordless;Corded",
            "Hammer | claw hammer, framing hammer | tool | 16 oz.;20 oz. / Fiberglass;Steel",
            "Tool Set | tool kit, mechanics set | tool | 100-Piece;200-Piece;65-Piece / Home;Mechanics",
            "Tape Measure | measuring tape, tape rule | tool | 25 ft.;16 ft.;35 ft. / Magnetic;Standard",
            "Socket Set | ratchet set, sockets | tool | 1/4 in.;3/8 in.;1/2 in. / SAE;Metric",
            "Workbench | work table, garage bench | tool | 4 ft.;6 ft. / Steel Top;Wood Top",
        ),
    ),
    "bath": (
        ("Delta", "Moen", "Kohler", "American Standard", "Pfister", "Glacier Bay"),
        (
            "Bathroom Faucet | bathroom tap, lavatory faucet, sink tap | metal | Single-Handle;Widespread;Touchless",
            "Shower Head | showerhead, rain shower | metal | 8 in.;10 in.;12 in. / Rain;Handheld",
            "Toilet | commode, wc, toilet bowl | kitchen | Elongated;Round / One-Piece;Two-Piece",
            "Bathroom Vanity | bathroom cabinet, sink cabinet | home | 30 in.;36 in.;48 in. / Single Sink;Double Sink",
            "Towel Bar | towel rail, towel rack | metal | 18 in.;24 in. / Wall Mount",
            "Bath Mat | bath rug, shower mat | home | 20 x 32 in.;17 x 24 in. / Memory Foam;Cotton",
        ),
    ),
    "kitchen": (
        ("KitchenAid", "Cuisinart", "Ninja", "Calphalon", "OXO", "Hamilton Beach"),
        (
            "Kitchen Faucet | kitchen tap, pull down faucet, sink mixer | metal | Pull-Down;Pull-Out;Touch",
            "Stand Mixer | cake mixer, kitchen mixer | kitchen | 5 qt.;6 qt. / Tilt-Head;Bowl-Lift",
            "Blender | smoothie maker, smoothie blender | kitchen | 64 oz.;48 oz. / Professional;Personal",
            "Cookware Set | pots and pans, pan set | kitchen | 10-Piece;12-Piece;8-Piece / Nonstick;Ceramic",
            "Chef Knife | kitchen knife, cooks knife | kitchen | 8 in.;6 in. / Forged;Stamped",
            "Coffee Maker | coffee machine, drip brewer | kitchen | 12-Cup;5-Cup / Programmable;Single Serve",
            "Toaster | bread toaster, toaster oven | kitchen | 2-Slice;4-Slice / Wide Slot",
        ),
    ),
    "furniture": (
        ("Ashley", "Sauder", "Zinus", "Walker Edison", "Safavieh", "Christopher Knight"),
        (
            "Sofa | couch, settee, loveseat | home | 3-Seat;2-Seat / Tufted;Modular",
            "Dining Table | kitchen table, dinner table | home | 4-Person;6-Person / Round;Rectangular",
            "Office Chair | desk chair, computer chair | home | Ergonomic;Mesh / Swivel",
            "Bookcase | bookshelf, book shelf | home | 5-Shelf;3-Shelf / Ladder;Cube",
            "Bed Frame | platform bed, bed base | home | Queen;King;Full / Upholstered;Metal",
            "Coffee Table | cocktail table, center table | home | Round;Lift-Top / Storage",
            "Dresser | chest of drawers, bureau | home | 6-Drawer;4-Drawer / Tall;Wide",
        ),
    ),
    "decor": (
        ("Safavieh", "nuLOOM", "Threshold", "Umbra", "Stone & Beam", "Better Homes"),
        (
            "Area Rug | carpet, floor rug | home | 5 ft. x 7 ft.;8 ft. x 10 ft. / Shag;Flatweave",
            "Throw Pillow | cushion, accent pillow | home | 18 in.;20 in. / Square;Lumbar",
            "Wall Mirror | mirror, hanging mirror | home | Round;Arched / 24 in.;36 in.",
            "Wall Art | canvas print, framed print | home | 24 x 36 in.;16 x 20 in. / Abstract;Botanical",
            "Curtains | drapes, window panels | home | 84 in.;96 in. / Blackout;Sheer",
            "Vase | flower vase, bud vase | home | 10 in.;14 in. / Ceramic;Glass",
            "Candle | scented candle, jar candle | home | 3-Wick;Jar / Vanilla;Cedar",
        ),
    ),
    "lighting": (
        ("Hampton Bay", "Philips", "Globe Electric", "Feit Electric", "Progress Lighting", "Kichler"),
        (
            "Pendant Light | hanging light, pendant lamp | light | 1-Light;3-Light / Dome;Globe",
            "Floor Lamp | standing lamp, tall lamp | light | 60 in.;72 in. / Arc;Tripod",
            "Table Lamp | bedside lamp, desk lamp | light | 18 in.;24 in. / USB;Touch",
            "Ceiling Fan | fan, ceiling fan light | light | 52 in.;44 in. / LED;Remote",
            "LED Bulb | light bulb, lightbulb | light | 60W;100W / A19;BR30 / Soft White;Daylight",
            "Chandelier | hanging chandelier, crystal light | light | 5-Light;6-Light / Candle;Crystal",
            "String Lights | fairy lights, patio lights | light | 48 ft.;24 ft. / Edison;LED",
        ),
    ),
    "garden": (
        ("Weber", "Greenworks", "Char-Broil", "Scotts", "Keter", "Flexzilla"),
        (
            "Garden Hose | hose pipe, water hose | garden | 50 ft.;100 ft. / Heavy-Duty;Expandable",
            "Lawn Mower | grass cutter, mower | garden | 21 in.;20 in. / Self-Propelled;Push",
            "Patio Set | outdoor furniture, patio furniture | home | 4-Piece;5-Piece / Wicker;Aluminum",
            "Gas Grill | bbq, barbecue | garden | 3-Burner;4-Burner / Propane;Natural Gas",
            "Planter | flower pot, plant pot | garden | 12 in.;16 in. / Self-Watering;Hanging",
            "Raised Garden Bed | planter box, garden box | garden | 4 ft. x 8 ft.;2 ft. x 4 ft. / Cedar;Metal",
            "Leaf Blower | blower, yard blower | garden | 40V;Gas / Cordless;Backpack",
        ),
    ),
    "apparel": (
        ("Levi's", "Patagonia", "Columbia", "Uniqlo", "Carhartt", "Gap"),
        (
            "Rain Jacket | raincoat, waterproof jacket, rain coat | apparel | Men's;Women's / Packable;Hooded",
            "Hoodie | hooded sweatshirt, pullover hoodie | apparel | Men's;Women's / Fleece;Cotton",
            "Jeans | denim pants, denim | apparel | Men's;Women's / Slim Fit;Straight Leg",
            "T-Shirt | tee, tshirt | apparel | Men's;Women's / Crew Neck;V-Neck",
            "Sweater | jumper, pullover, knit sweater | apparel | Men's;Women's / Wool;Cashmere",
            "Dress | sundress, midi dress | apparel | Women's / Linen;Wrap",
        ),
    ),
    "footwear": (
        ("Nike", "Adidas", "Timberland", "Birkenstock", "Fossil", "JanSport"),
        (
            "Sneakers | trainers, running shoes, tennis shoes | apparel | Men's;Women's / Running;Canvas",
            "Boots | work boots, hiking boots | apparel | Men's;Women's / Waterproof;Leather",
            "Sandals | flip flops, slides | apparel | Men's;Women's / Cork;Leather",
            "Backpack | rucksack, book bag, school bag | apparel | 25L;30L / Laptop;Travel",
            "Handbag | purse, tote bag | apparel | Leather;Canvas / Crossbody;Tote",
            "Watch | wristwatch, wrist watch | metal | 42mm;38mm / Chronograph;Analog",
        ),
    ),
    "pets": (
        ("Petmate", "Frisco", "KONG", "Furhaven", "PetSafe"),
        (
            "Dog Bed | pet bed, puppy bed | pet | Large;Medium;Small / Orthopedic;Bolster",
            "Cat Tree | cat tower, cat condo | pet | 52 in.;72 in. / Multi-Level",
            "Dog Leash | lead, dog lead | pet | 6 ft.;4 ft. / Nylon;Retractable",
            "Litter Box | cat litter pan, litter tray | pet | Hooded;Self-Cleaning",
            "Pet Bowl | dog bowl, food bowl | pet | 2 cup;4 cup / Stainless Steel;Elevated",
        ),
    ),
    "hardware": (
        ("Kwikset", "Schlage", "Simpson Strong-Tie", "Pergo", "MSI", "Liberty"),
        (
            "Laminate Flooring | laminate floor, floating floor | floor | 12 mm;8 mm / Water-Resistant",
            "Floor Tile | tiles, porcelain tile | floor | 12 in. x 24 in.;6 in. x 24 in. / Porcelain;Ceramic",
            "Door Knob | door handle, passage knob | floor | Privacy;Passage / Round",
            "Cabinet Pull | drawer pull, cabinet handle | metal | 3 in.;5 in. / Bar;Cup",
            "Shelf Bracket | angle bracket, l bracket | metal | 8 in.;12 in. / Heavy-Duty",
            "Smart Lock | keyless lock, electronic deadbolt | metal | Wi-Fi;Keypad / Touchscreen",
        ),
    ),
}

#: style words → attribute values that carry the style (titles never say the style word)
STYLES: dict[str, tuple[str, ...]] = {
    "farmhouse": ("Distressed White", "Reclaimed Wood", "Galvanized"),
    "boho": ("Rattan", "Macrame", "Jute", "Terracotta"),
    "mid century": ("Walnut", "Teak", "Mustard"),
    "industrial": ("Black Metal", "Iron", "Matte Black"),
    "coastal": ("Seagrass", "Whitewashed", "Navy"),
    "scandinavian": ("Light Oak", "Ivory", "Birch"),
    "glam": ("Velvet", "Gold", "Blush Pink"),
}
STYLE_ALIASES: dict[str, tuple[str, ...]] = {
    "farmhouse": ("farmhouse", "rustic", "country farmhouse"),
    "boho": ("boho", "bohemian", "boho chic"),
    "mid century": ("mid century", "mid century modern", "mcm", "retro"),
    "industrial": ("industrial", "loft style", "urban industrial"),
    "coastal": ("coastal", "beach house", "nautical"),
    "scandinavian": ("scandinavian", "scandi", "nordic", "minimalist"),
    "glam": ("glam", "hollywood glam", "luxe"),
}

#: occasion intents: phrasings → product types (only engagement links them)
OCCASIONS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("gift for dad", "gifts for dad", "fathers day gift", "present for father", "dad gift ideas"),
     ("Cordless Drill", "Tool Set", "Socket Set", "Gas Grill", "Watch")),
    (("gift for mom", "mothers day gift", "gifts for her", "present for mom"),
     ("Candle", "Vase", "Handbag", "Stand Mixer", "Throw Pillow")),
    (("housewarming gift", "new home gift", "housewarming present"),
     ("Candle", "Vase", "Coffee Maker", "Wall Art", "Planter")),
    (("dorm room essentials", "college dorm", "dorm must haves", "dorm decor"),
     ("String Lights", "Table Lamp", "Backpack", "Throw Pillow", "Bath Mat")),
    (("first apartment", "new apartment essentials", "moving out checklist"),
     ("Cookware Set", "Toaster", "Bed Frame", "Dining Table", "Curtains")),
    (("backyard party", "summer cookout", "outdoor entertaining"),
     ("String Lights", "Gas Grill", "Patio Set", "Planter")),
    (("home office setup", "work from home", "wfh desk setup"),
     ("Office Chair", "Table Lamp", "Bookcase", "LED Bulb")),
    (("new puppy", "puppy essentials", "dog owner must haves"),
     ("Dog Bed", "Dog Leash", "Pet Bowl")),
    (("bathroom remodel", "bathroom makeover", "bath renovation"),
     ("Bathroom Vanity", "Bathroom Faucet", "Shower Head", "Toilet", "Floor Tile")),
    (("curb appeal", "front porch refresh", "exterior makeover"),
     ("Exterior Paint", "Planter", "Door Knob", "Smart Lock", "String Lights")),
    (("winter essentials", "cold weather gear", "fall wardrobe"),
     ("Rain Jacket", "Boots", "Sweater", "Hoodie")),
    (("back to school", "school supplies", "college essentials"),
     ("Backpack", "Sneakers", "Hoodie", "Jeans")),
    (("weekend diy project", "diy projects", "garage makeover"),
     ("Workbench", "Circular Saw", "Wood Stain", "Shelf Bracket", "Tape Measure")),
)

#: words that change no intent (variety, so held-out query strings are new)
PREFIXES = ("best", "cheap", "modern", "affordable", "top rated", "small", "large", "new", "cute", "quality")
SUFFIXES = ("ideas", "for sale", "on sale", "deals", "near me", "2024", "under 100", "reviews", "set", "online")


@dataclass(frozen=True)
class ProductType:
    """One product type: title name, query synonyms, attribute palette, spec slots."""

    name: str
    category: str
    synonyms: tuple[str, ...]
    palette: tuple[str, ...]
    specs: tuple[tuple[str, ...], ...]


def product_types() -> list[ProductType]:
    """All product types in a fixed order (category order, then line order)."""
    out: list[ProductType] = []
    for category, (_brands, lines) in CATEGORIES.items():
        for line in lines:
            name, syn, palette, *spec = [part.strip() for part in line.split("|")]
            slots = tuple(tuple(v.strip() for v in s.split(";")) for s in spec[0].split(" / ")) if spec else ()
            out.append(ProductType(name, category, tuple(s.strip() for s in syn.split(",")), PALETTES[palette], slots))
    return out
